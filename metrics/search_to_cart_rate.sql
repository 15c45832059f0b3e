{{ config(kind='input', parent='items_per_order', edge='hypothesis', dimension='depth',
          owner='Discovery & Merchandising', label='Search-to-add-to-cart rate', unit='percent',
          dimensions=['region', 'platform']) }}
select
    {{ period('occurred_at') }} as period_start,
    count(*) filter (where event_type = 'add_to_cart')
        / nullif(count(*) filter (where event_type = 'search'), 0) as value,
    count(*) filter (where event_type = 'add_to_cart') as numerator,
    count(*) filter (where event_type = 'search') as denominator
from {{ ref('stg_sessions') }}
where event_type in ('search', 'add_to_cart')
group by 1
