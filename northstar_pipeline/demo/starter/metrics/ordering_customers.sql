{{ config(kind='input', parent='weekly_orders', edge='formula', dimension='breadth', owner='Growth') }}
select
    {{ period('placed_at') }} as period_start,
    count(distinct user_id) as value
from {{ ref('stg_orders') }}
group by 1
