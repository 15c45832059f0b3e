{{ config(kind='input', parent='weekly_orders', edge='formula', dimension='frequency', owner='Engagement') }}
select
    {{ period('placed_at') }} as period_start,
    {{ safe_ratio('count(*)', 'count(distinct user_id)') }} as value,
    count(*) as numerator,
    count(distinct user_id) as denominator
from {{ ref('stg_orders') }}
group by 1
