{{ config(description='Orders with their delivery outcome (null while not yet delivered).') }}
select
    o.order_id,
    o.user_id,
    o.placed_at,
    o.items,
    o.promised_at,
    o.region,
    o.platform,
    d.delivered_at,
    d.minutes_late,
    coalesce(d.is_on_time, false) as is_on_time
from {{ ref('stg_orders') }} as o
left join {{ ref('stg_deliveries') }} as d on d.order_id = o.order_id
