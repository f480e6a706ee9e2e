-- id: serious_illness
-- title: 重大疾病就医
-- risk_type: 因病
-- department: 医保
-- severity: medium
-- source: health
-- basis: 医保部门大病、重特大疾病患者信息比对推送（重大疾病标志为“是”）
-- groups: monitored, other
SELECT household_id, person_id, settlement_id AS record_key, settlement_date AS event_date,
       CAST(self_paid AS DOUBLE) AS amount,
       '重大疾病：' || coalesce(diagnosis, '未注明诊断') AS detail
FROM linked_health
WHERE serious_illness = '是' AND settlement_date >= {year_start} AND settlement_date <= {as_of}
