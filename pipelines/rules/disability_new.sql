-- id: disability_new
-- title: 新增残疾人补贴（重度残疾从重）
-- risk_type: 因残
-- department: 民政/残联
-- severity: medium
-- source: civil_affairs
-- basis: 新办残疾人证（一、二级为重度）及困难残疾人生活补贴、重度残疾人护理补贴新增人员比对
-- groups: monitored, other
SELECT household_id, person_id, record_id AS record_key, event_date, CAST(amount AS DOUBLE) AS amount,
       '新增残疾人两项补贴' || coalesce('，' || disability_grade, '') AS detail,
       CASE WHEN disability_grade IN ('一级', '二级') THEN 'high' ELSE 'medium' END AS severity
FROM linked_civil_affairs
WHERE assistance_type = '残疾人两项补贴' AND action = '新增'
  AND event_date >= {year_start} AND event_date <= {as_of}
