-- id: civil_relief
-- title: 新增低保、特困、临时救助或低保停保
-- risk_type: 其他
-- department: 民政
-- severity: medium
-- source: civil_affairs
-- basis: 民政部门低保、特困供养、临时救助新纳入及低保退出人员信息比对
-- groups: monitored, other
SELECT household_id, person_id, record_id AS record_key, event_date,
       CAST(amount AS DOUBLE) AS amount,
       action || assistance_type AS detail,
       CASE WHEN assistance_type = '低保' AND action = '取消' THEN 'high' ELSE 'medium' END AS severity
FROM linked_civil_affairs
WHERE event_date >= {year_start} AND event_date <= {as_of}
  AND ((assistance_type IN ('低保', '特困', '临时救助') AND action IN ('新增', '发放'))
       OR (assistance_type = '低保' AND action = '取消'))
