-- id: job_loss
-- title: 劳动年龄成员失业减少的收入
-- effect: subtract
-- risk_type: 因务工就业不稳
-- source: social_insurance
-- basis: 失业登记或停止缴费后，按月缴费基数 ÷ contribution_base_wage_share 还原月工资（缺失时按本地月工资 local_monthly_wage），乘以至今（或至再就业）的月数估算减收，最多 job_loss_months_max 个月
WITH losses AS (
  SELECT s.household_id, s.person_id, s.record_id AS record_key, s.event_date,
         coalesce(CAST(s.contribution_base AS DOUBLE) / share.value, wage.value) AS monthly,
         cap.value AS months_max,
         row_number() OVER (PARTITION BY s.person_id ORDER BY s.event_date, s.record_id) AS n
  FROM linked_social_insurance s
  JOIN roster_person p ON p.person_id = s.person_id
  JOIN household_thresholds lo ON lo.household_id = s.household_id AND lo.parameter = 'working_age_min'
  JOIN household_thresholds hi ON hi.household_id = s.household_id AND hi.parameter = 'working_age_max'
  JOIN household_thresholds wage ON wage.household_id = s.household_id AND wage.parameter = 'local_monthly_wage'
  JOIN household_thresholds cap ON cap.household_id = s.household_id AND cap.parameter = 'job_loss_months_max'
  JOIN household_thresholds share ON share.household_id = s.household_id AND share.parameter = 'contribution_base_wage_share'
  WHERE s.event_type IN ('失业登记', '停止缴费')
    AND s.event_date >= {year_start} AND s.event_date <= {as_of}
    AND date_part('year', s.event_date) - date_part('year', p.birth_date) BETWEEN lo.value AND hi.value
),
first_losses AS (SELECT * FROM losses WHERE n = 1),
back_at_work AS (
  SELECT l.record_key, min(r.event_date) AS back_on
  FROM first_losses l
  JOIN linked_social_insurance r ON r.person_id = l.person_id
  WHERE r.event_type IN ('就业登记', '参保缴费') AND r.event_date > l.event_date AND r.event_date <= {as_of}
  GROUP BY l.record_key
),
spells AS (
  SELECT l.*, coalesce(b.back_on, {as_of}) AS until,
    least(l.months_max,
      greatest(0, (date_part('year', coalesce(b.back_on, {as_of})) * 12 + date_part('month', coalesce(b.back_on, {as_of})))
                - (date_part('year', l.event_date) * 12 + date_part('month', l.event_date)))) AS months
  FROM first_losses l LEFT JOIN back_at_work b ON b.record_key = l.record_key
)
SELECT household_id, person_id, record_key, event_date, monthly * months AS amount,
       '失业 ' || CAST(months AS VARCHAR) || ' 个月 × 月收入约 ' || CAST(round(monthly, 0) AS VARCHAR) || ' 元' AS detail
FROM spells WHERE months > 0
