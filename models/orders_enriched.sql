{{ config(description='Orders with their delivery outcome (null while not yet delivered).',
          materialized='incremental', unique_key='order_id') }}
-- landed_date is the later landing of the order and its delivery. Nightly, the batch is every order whose
-- order or delivery landed in the window (macros/incremental.sql), joined again to its delivery; both sides
-- are narrowed to those orders before the join (a join over every stored delivery costs 0.4 s at 100M events).
{% if is_incremental() %}
with touched as (
    select order_id from {{ ref('stg_orders') }} where landed_date >= {{ landed_window() }}
    union
    select order_id from {{ ref('stg_deliveries') }} where landed_date >= {{ landed_window() }}
)
{% endif %}
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
    coalesce(d.is_on_time, false) as is_on_time,
    greatest(o.landed_date, coalesce(d.landed_date, o.landed_date)) as landed_date
{% if is_incremental() %}
from (select * from {{ ref('stg_orders') }} semi join touched using (order_id)) as o
left join (select * from {{ ref('stg_deliveries') }} semi join touched using (order_id)) as d on d.order_id = o.order_id
{% else %}
from {{ ref('stg_orders') }} as o
left join {{ ref('stg_deliveries') }} as d on d.order_id = o.order_id
{% endif %}
