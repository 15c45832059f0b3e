{{ config(description="Each placed order with its customer's previous order time: the latest placed_at strictly "
                      "before its own (null: none, or no customer or time).",
          materialized='incremental', unique_key='order_id') }}
-- Carries the look-back of metrics/retention_4w.sql into each row, so that metric is period-local (README
-- "Incremental metrics and models downstream"). Ties: orders at the same placed_at share one previous order.
-- Nightly, the batch is every order that landed in the window (macros/incremental.sql) and every later order
-- of the same customers (its previous order may be a late arrival), as stg_orders has them now and as this
-- table stored them (a moved order changes its old successors too).
{% if is_incremental() %}
{% set window_start = landed_window() %}
with changed as materialized (
    select order_id, user_id, placed_at from {{ ref('stg_orders') }} where landed_date >= {{ window_start }}
    union all
    select s.order_id, s.user_id, s.placed_at from {{ this }} as s
    where s.order_id in (select order_id from {{ ref('stg_orders') }} where landed_date >= {{ window_start }})
), touched as (  -- per customer, the earliest changed order time: orders from it on are recomputed
    select user_id, min(placed_at) as since from changed where user_id is not null group by user_id
), theirs as materialized (
    select o.order_id, o.user_id, o.placed_at, o.landed_date, t.since
    from {{ ref('stg_orders') }} as o join touched as t on t.user_id = o.user_id
), known as (  -- the order times the recomputed ones can follow: from since on, and the last one before it
    select user_id, placed_at from theirs where placed_at >= since
    union all
    select user_id, max(placed_at) from theirs where placed_at < since group by user_id
), batch as (
    select order_id, user_id, placed_at, landed_date from theirs where placed_at >= since
    union
    select order_id, user_id, placed_at, landed_date from {{ ref('stg_orders') }}
    where order_id in (select order_id from changed)
)
{% else %}
with known as (
    select user_id, placed_at from {{ ref('stg_orders') }}
), batch as (
    select order_id, user_id, placed_at, landed_date from {{ ref('stg_orders') }}
)
{% endif %}
, times as (
    select user_id, placed_at, lag(placed_at) over (partition by user_id order by placed_at) as prev_placed_at
    from (select distinct user_id, placed_at from known where user_id is not null and placed_at is not null) as k
)
select b.order_id, b.user_id, b.placed_at, t.prev_placed_at, b.landed_date
from batch as b
left join times as t on t.user_id = b.user_id and t.placed_at = b.placed_at
