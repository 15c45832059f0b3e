{{ config(description='Orders joined to their delivery: lateness, and whether the order repeats a recent one.') }}
select
    o.order_id,
    o.user_id,
    o.placed_at,
    o.items,
    d.delivered_at,
    date_diff('minute', o.promised_at, d.delivered_at) as minutes_late,
    d.delivered_at > o.promised_at + to_minutes({{ var('late_grace_minutes') }}) as is_late,
    coalesce(o.placed_at <= o.previous_placed_at + interval {{ var('repeat_window_days') }} day, false) as is_repeat
from {{ ref('stg_orders') }} as o
left join {{ ref('stg_deliveries') }} as d on d.order_id = o.order_id
