{#- The North Star: orders that reached the customer on time, the value we promise. -#}
{{ config(
    kind='north_star',
    label='On-time orders',
    owner='Leadership',
    unit='count',
    formula='ordering_customers * orders_per_customer * on_time_rate',
    description='Orders placed in the period and delivered by the promised time.',
    dimensions=['region', 'platform'],
) }}
select
    {{ period('placed_at') }} as period_start,
    count(*) filter (where is_on_time) as value
from {{ ref('orders_enriched') }}
group by 1
