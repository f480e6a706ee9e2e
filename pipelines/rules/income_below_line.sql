-- id: income_below_line
-- title: 扣除合规自付医疗费用后家庭人均收入低于监测标准
-- risk_type: 因病
-- department: 医保/乡村振兴
-- severity: high
-- source: health
-- basis: 监测范围：家庭年人均纯收入（扣除合规自付支出后）低于当年监测标准（参数 monitoring_income_line）
-- groups: monitored, other
WITH costs AS (
  SELECT household_id, CAST(sum(self_paid) AS DOUBLE) AS self_paid, max(settlement_date) AS last_date,
         max(settlement_id) AS last_key
  FROM linked_health
  WHERE settlement_date >= {year_start} AND settlement_date <= {as_of} AND self_paid IS NOT NULL
  GROUP BY household_id
)
SELECT h.household_id, CAST(NULL AS VARCHAR) AS person_id, 'household:' || h.household_id AS record_key,
       c.last_date AS event_date,
       (CAST(h.annual_income AS DOUBLE) - c.self_paid) / h.household_size AS amount,
       '扣除自付医疗 ' || CAST(round(c.self_paid, 2) AS VARCHAR) || ' 元后人均 '
         || CAST(round((CAST(h.annual_income AS DOUBLE) - c.self_paid) / h.household_size, 2) AS VARCHAR)
         || ' 元 < 监测标准 ' || CAST(line.value AS VARCHAR) || ' 元' AS detail
FROM roster_household h
JOIN costs c ON c.household_id = h.household_id
JOIN household_thresholds line ON line.household_id = h.household_id AND line.parameter = 'monitoring_income_line'
WHERE h.annual_income IS NOT NULL AND h.household_size > 0 AND c.self_paid > 0
  AND (CAST(h.annual_income AS DOUBLE) - c.self_paid) / h.household_size < line.value
