{{ config(kind='input', parent='on_time_orders', edge='hypothesis', dimension='depth',
          owner='Discovery & Merchandising', label='Items per order', unit='number',
          dimensions=['region', 'platform']) }}
select
    {{ period('placed_at') }} as period_start,
    sum(items) / count(*) as value,
    sum(items) as numerator,
    count(*) as denominator
from {{ ref('stg_orders') }}
group by 1
