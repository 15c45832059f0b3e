{{ config(description='One row per delivered order, with lateness against the promise.',
          materialized='incremental', unique_key='order_id') }}
-- Nightly, only the stg_events rows that landed in the window are read (macros/incremental.sql).
select
    order_id,
    user_id,
    delivered_at,
    promised_at,
    region,
    platform,
    date_diff('second', promised_at, delivered_at) / 60.0 as minutes_late,
    delivered_at <= promised_at + to_minutes({{ var('on_time_grace_minutes', 0) }}) as is_on_time,
    landed_date
from {{ ref('stg_events') }}
where event_type = 'order_delivered'
{% if is_incremental() %}
    and landed_date >= {{ landed_window() }}
{% endif %}
