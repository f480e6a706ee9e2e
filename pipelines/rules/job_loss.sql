-- id: job_loss
-- title: 劳动年龄成员失业登记或停止缴费
-- risk_type: 因务工就业不稳
-- department: 人社
-- severity: medium
-- source: social_insurance
-- basis: 人社部门失业登记、社保断缴信息比对；劳动年龄区间 working_age_min–max（本地口径）
-- groups: monitored, other
SELECT s.household_id, s.person_id, s.record_id AS record_key, s.event_date, CAST(s.contribution_base AS DOUBLE) AS amount,
       s.event_type || coalesce('（' || s.employer || '）', '') AS detail
FROM linked_social_insurance s
JOIN roster_person p ON p.person_id = s.person_id
JOIN household_thresholds lo ON lo.household_id = s.household_id AND lo.parameter = 'working_age_min'
JOIN household_thresholds hi ON hi.household_id = s.household_id AND hi.parameter = 'working_age_max'
WHERE s.event_type IN ('失业登记', '停止缴费')
  AND s.event_date >= {year_start} AND s.event_date <= {as_of}
  AND date_part('year', s.event_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
