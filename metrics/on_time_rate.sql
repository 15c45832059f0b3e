{{ config(kind='input', parent='on_time_orders', edge='formula', dimension='efficiency',
          owner='Logistics & Fulfillment', label='% of orders delivered on time', unit='percent',
          target=0.92,
          dimensions=['region', 'platform']) }}
select
    {{ period('placed_at') }} as period_start,
    count(*) filter (where is_on_time) / count(*) as value,
    count(*) filter (where is_on_time) as numerator,
    count(*) as denominator
from {{ ref('orders_enriched') }}
group by 1
