-- id: medical_income_share
-- title: 医疗自付超过上年农村居民人均可支配收入一定比例
-- risk_type: 因病
-- department: 医保
-- severity: high
-- source: health
-- basis: 年度个人自付超过上年全省农村居民人均可支配收入的50%（脱贫人口）或100%（其他农村人口）（参数 medical_income_share × rural_disposable_income_prev_year）
-- groups: monitored, other
WITH records AS (
  SELECT household_id, person_id, settlement_id AS record_key, settlement_date AS event_date,
         CAST(self_paid AS DOUBLE) AS amount, self_paid
  FROM linked_health
  WHERE settlement_date >= {year_start} AND settlement_date <= {as_of} AND self_paid IS NOT NULL
),
totals AS (SELECT person_id, CAST(sum(self_paid) AS DOUBLE) AS total FROM records GROUP BY person_id),
limits AS (
  SELECT s.household_id, s.value * i.value AS limit_yuan
  FROM household_thresholds s
  JOIN household_thresholds i ON s.household_id = i.household_id AND i.parameter = 'rural_disposable_income_prev_year'
  WHERE s.parameter = 'medical_income_share'
)
SELECT r.household_id, r.person_id, r.record_key, r.event_date, r.amount,
       '年度自付 ' || CAST(round(t.total, 2) AS VARCHAR) || ' 元 > 上年农村人均可支配收入折算 ' || CAST(round(l.limit_yuan, 2) AS VARCHAR) || ' 元' AS detail
FROM records r
JOIN totals t ON r.person_id = t.person_id
JOIN limits l ON l.household_id = r.household_id
WHERE t.total > l.limit_yuan
