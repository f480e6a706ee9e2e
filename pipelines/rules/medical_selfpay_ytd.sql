-- id: medical_selfpay_ytd
-- title: 医疗个人自付年度累计超标
-- risk_type: 因病
-- department: 医保
-- severity: high
-- source: health
-- basis: 多地防返贫监测部门筛查：脱贫人口和监测对象年度累计个人自付（报销后）≥5000元、其他农村人口≥20000元即预警（阈值 medical_selfpay_ytd）
-- groups: monitored, other
WITH records AS (
  SELECT household_id, person_id, settlement_id AS record_key, settlement_date AS event_date,
         CAST(self_paid AS DOUBLE) AS amount, self_paid
  FROM linked_health
  WHERE settlement_date >= {year_start} AND settlement_date <= {as_of} AND self_paid IS NOT NULL
),
totals AS (
  SELECT person_id, CAST(sum(self_paid) AS DOUBLE) AS total FROM records GROUP BY person_id
)
SELECT r.household_id, r.person_id, r.record_key, r.event_date, r.amount,
       '年度累计自付 ' || CAST(round(t.total, 2) AS VARCHAR) || ' 元 ≥ ' || CAST(th.value AS VARCHAR) || ' 元' AS detail
FROM records r
JOIN totals t ON r.person_id = t.person_id
JOIN household_thresholds th ON th.household_id = r.household_id AND th.parameter = 'medical_selfpay_ytd'
WHERE t.total >= th.value
