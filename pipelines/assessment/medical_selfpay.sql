-- id: medical_selfpay
-- title: 自付医疗费用（报销后）
-- effect: subtract
-- risk_type: 因病
-- source: health
-- basis: 认定办法：家庭人均纯收入扣除合规自付医疗支出后与监测标准比较；统计期内每笔结算的个人自付金额
SELECT household_id, person_id, settlement_id AS record_key, settlement_date AS event_date,
       CAST(self_paid AS DOUBLE) AS amount,
       coalesce(visit_type, '就诊') || ' ' || coalesce(diagnosis, '') || ' 自付 ' || CAST(round(CAST(self_paid AS DOUBLE), 2) AS VARCHAR) || ' 元' AS detail
FROM linked_health
WHERE settlement_date >= {year_start} AND settlement_date <= {as_of} AND self_paid > 0
