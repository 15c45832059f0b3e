{{ config(kind='counter', guard='orders', label='Late deliveries', owner='Logistics',
          direction='lower_is_better', warn_change_pct=5, breach_change_pct=20, ceiling=0.5) }}
with delivered as (
    select placed_at, is_late, items
    from {{ ref('order_facts') }}
    where delivered_at is not null
), per_period as (
    select
        {{ period('placed_at') }} as period_start,
        count(*) filter (where is_late) as late,
        count(*) as delivered
    from delivered
    group by 1
)
select period_start, late / delivered as value, late as numerator, delivered as denominator
from per_period
