{{ config(kind='input', parent='weekly_orders', edge='hypothesis', dimension='depth', owner='Merchandising') }}
select
    {{ period('placed_at') }} as period_start,
    {{ safe_ratio('sum(items)', 'count(*)') }} as value,
    sum(items) as numerator,
    count(*) as denominator
from {{ ref('stg_orders') }}
group by 1
