{#- An outcome: of the period's ordering customers, the share who had also ordered in the 4 weeks
    (28 days) before their first order of the period. Looks back, so a complete period's value is final. -#}
{{ config(kind='outcome', label='4-week retention', owner='Finance', unit='percent',
          description="Share of the period's ordering customers who also ordered in the 28 days before.") }}
-- The look-back is in the model (prev_placed_at), so each period reads only its own orders and a night
-- recomputes only the periods it touches. A customer's first orders of the period are the ones whose
-- previous order is before the period; the customer is retained when that order is at most 28 days earlier.
with customers as (
    select {{ period('placed_at') }} as period_start, user_id,
           bool_or(prev_placed_at < {{ period('placed_at') }}
                   and prev_placed_at >= placed_at - interval 28 day) as is_retained
    from {{ ref('orders_with_previous') }}
    group by 1, 2
)
select
    period_start,
    count(*) filter (where is_retained) / count(*) as value,
    count(*) filter (where is_retained) as numerator,
    count(*) as denominator
from customers
group by 1
