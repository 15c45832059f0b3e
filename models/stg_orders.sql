{{ config(description='One row per placed order.', materialized='incremental', unique_key='order_id') }}
-- Nightly, only the stg_events rows that landed in the window are read (macros/incremental.sql).
select
    order_id,
    user_id,
    occurred_at as placed_at,
    items,
    promised_at,
    region,
    platform,
    landed_date
from {{ ref('stg_events') }}
where event_type = 'order_placed'
{% if is_incremental() %}
    and landed_date >= {{ landed_window() }}
{% endif %}
