-- id: school_dropout
-- title: 义务教育阶段辍学（三保障）
-- effect: failure
-- risk_type: 因学
-- source: education
-- basis: 认定办法：义务教育保障不达标的，不经收入测算即纳入；义务教育年龄段学生学籍状态为辍学
SELECT e.household_id, e.person_id, e.student_id AS record_key, e.status_date AS event_date,
       CAST(NULL AS DOUBLE) AS amount,
       e.stage || e.status || '（' || coalesce(e.school, '学校未注明') || '）' AS detail
FROM linked_education e
JOIN roster_person p ON p.person_id = e.person_id
JOIN household_thresholds lo ON lo.household_id = e.household_id AND lo.parameter = 'compulsory_age_min'
JOIN household_thresholds hi ON hi.household_id = e.household_id AND hi.parameter = 'compulsory_age_max'
WHERE e.status = '辍学'
  AND e.status_date >= {year_start} AND e.status_date <= {as_of}
  AND date_part('year', e.status_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
