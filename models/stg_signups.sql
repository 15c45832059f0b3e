{{ config(description='One row per new customer at signup.', materialized='incremental', unique_key='event_id') }}
-- Nightly, only the stg_events rows that landed in the window are read (macros/incremental.sql). A customer
-- can sign up twice: the key is the signup event.
select
    user_id,
    occurred_at as signed_up_at,
    region,
    platform,
    event_id,
    landed_date
from {{ ref('stg_events') }}
where event_type = 'signup'
{% if is_incremental() %}
    and landed_date >= {{ landed_window() }}
{% endif %}
