-- id: relief
-- title: 领取的救助（低保、特困按月，临时救助一次）
-- effect: add
-- risk_type: 其他
-- source: civil_affairs
-- basis: 统计期内新增的低保、特困按月发放金额乘以至今月数，临时救助按发放金额，计入家庭收入
SELECT household_id, person_id, record_id AS record_key, event_date,
       CASE WHEN assistance_type = '临时救助' THEN CAST(amount AS DOUBLE)
            ELSE CAST(amount AS DOUBLE) * greatest(0, (date_part('year', {as_of}) * 12 + date_part('month', {as_of}))
                                              - (date_part('year', event_date) * 12 + date_part('month', event_date)))
       END AS amount,
       assistance_type || action || ' ' || CAST(round(CAST(amount AS DOUBLE), 2) AS VARCHAR) || ' 元' AS detail
FROM linked_civil_affairs
WHERE amount IS NOT NULL AND event_date >= {year_start} AND event_date <= {as_of}
  AND ((assistance_type IN ('低保', '特困') AND action = '新增') OR (assistance_type = '临时救助' AND action = '发放'))
