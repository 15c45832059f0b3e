{{ config(kind='input', parent='on_time_orders', edge='formula', dimension='breadth',
          owner='Acquisition & Retention', label='Ordering customers', unit='count',
          dimensions=['region', 'platform']) }}
select
    {{ period('placed_at') }} as period_start,
    count(distinct user_id) as value
from {{ ref('stg_orders') }}
group by 1
