{#- An outcome: of the period's ordering customers, the share who had also ordered in the 4 weeks
    (28 days) before their first order of the period. Looks back, so a complete period's value is final. -#}
{{ config(kind='outcome', label='4-week retention', owner='Finance', unit='percent',
          description="Share of the period's ordering customers who also ordered in the 28 days before.") }}
with firsts as (
    select user_id, {{ period('placed_at') }} as period_start, min(placed_at) as first_at
    from {{ ref('stg_orders') }}
    group by 1, 2
), retained as (
    select f.period_start, f.user_id,
           count(p.order_id) > 0 as is_retained
    from firsts as f
    left join {{ ref('stg_orders') }} as p
        on p.user_id = f.user_id and p.placed_at < f.first_at and p.placed_at >= f.first_at - interval 28 day
    group by 1, 2
)
select
    period_start,
    count(*) filter (where is_retained) / count(*) as value,
    count(*) filter (where is_retained) as numerator,
    count(*) as denominator
from retained
group by 1
