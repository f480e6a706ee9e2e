-- id: severe_disability
-- title: 劳动年龄成员重度残疾减少的收入
-- effect: subtract
-- risk_type: 因残
-- source: civil_affairs
-- basis: 新增一、二级残疾的劳动年龄成员，按其收入份额乘以丧失比例（disability_income_loss_share）和至今的月数估算减收
WITH earners AS (
  SELECT p.household_id, count(*) AS n
  FROM roster_person p
  JOIN household_thresholds lo ON lo.household_id = p.household_id AND lo.parameter = 'working_age_min'
  JOIN household_thresholds hi ON hi.household_id = p.household_id AND hi.parameter = 'working_age_max'
  WHERE date_part('year', {as_of}) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
  GROUP BY p.household_id
),
cases AS (
  SELECT c.household_id, c.person_id, c.record_id AS record_key, c.event_date,
         CAST(h.annual_income AS DOUBLE) / e.n / 12.0 * share.value AS monthly,
         least(12, greatest(0, (date_part('year', {as_of}) * 12 + date_part('month', {as_of}))
                             - (date_part('year', c.event_date) * 12 + date_part('month', c.event_date)))) AS months
  FROM linked_civil_affairs c
  JOIN roster_person p ON p.person_id = c.person_id
  JOIN roster_household h ON h.household_id = c.household_id
  JOIN earners e ON e.household_id = c.household_id
  JOIN household_thresholds lo ON lo.household_id = c.household_id AND lo.parameter = 'working_age_min'
  JOIN household_thresholds hi ON hi.household_id = c.household_id AND hi.parameter = 'working_age_max'
  JOIN household_thresholds share ON share.household_id = c.household_id AND share.parameter = 'disability_income_loss_share'
  WHERE c.assistance_type = '残疾人两项补贴' AND c.action = '新增' AND c.disability_grade IN ('一级', '二级')
    AND c.event_date >= {year_start} AND c.event_date <= {as_of}
    AND date_part('year', c.event_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
)
SELECT household_id, person_id, record_key, event_date, monthly * months AS amount,
       '重度残疾，减收 ' || CAST(months AS VARCHAR) || ' 个月 × 约 ' || CAST(round(monthly, 0) AS VARCHAR) || ' 元' AS detail
FROM cases WHERE months > 0
