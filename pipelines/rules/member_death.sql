-- id: member_death
-- title: 家庭成员死亡（劳动年龄成员从重）
-- risk_type: 缺劳动力
-- department: 民政
-- severity: medium
-- source: civil_affairs
-- basis: 民政殡葬火化、死亡登记信息比对；劳动年龄成员死亡导致家庭缺劳动力
-- groups: monitored, other
SELECT c.household_id, c.person_id, c.record_id AS record_key, c.event_date, CAST(NULL AS DOUBLE) AS amount,
       '成员死亡，享年约 ' || CAST(date_part('year', c.event_date) - date_part('year', p.birth_date) AS VARCHAR) || ' 岁' AS detail,
       CASE WHEN date_part('year', c.event_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
            THEN 'high' ELSE 'medium' END AS severity,
       CASE WHEN date_part('year', c.event_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
            THEN '缺劳动力' ELSE '其他' END AS risk_type
FROM linked_civil_affairs c
JOIN roster_person p ON p.person_id = c.person_id
JOIN household_thresholds lo ON lo.household_id = c.household_id AND lo.parameter = 'working_age_min'
JOIN household_thresholds hi ON hi.household_id = c.household_id AND hi.parameter = 'working_age_max'
WHERE c.assistance_type = '死亡登记' AND c.event_date >= {year_start} AND c.event_date <= {as_of}
