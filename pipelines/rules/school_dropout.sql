-- id: school_dropout
-- title: 义务教育阶段学生辍学或休学
-- risk_type: 因学
-- department: 教育
-- severity: high
-- source: education
-- basis: 教育部门控辍保学：义务教育适龄儿童疑似辍学、休学信息比对（年龄区间 compulsory_age_min–max）
-- groups: monitored, other
SELECT e.household_id, e.person_id, e.student_id AS record_key, e.status_date AS event_date, CAST(NULL AS DOUBLE) AS amount,
       e.stage || e.status || '（' || coalesce(e.school, '学校未注明') || '）' AS detail
FROM linked_education e
JOIN roster_person p ON p.person_id = e.person_id
JOIN household_thresholds lo ON lo.household_id = e.household_id AND lo.parameter = 'compulsory_age_min'
JOIN household_thresholds hi ON hi.household_id = e.household_id AND hi.parameter = 'compulsory_age_max'
WHERE e.status IN ('辍学', '休学')
  AND e.status_date >= {year_start} AND e.status_date <= {as_of}
  AND date_part('year', e.status_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
