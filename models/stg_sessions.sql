{{ config(description='In-app activity: app opens, searches and add-to-carts.', materialized='view') }}
select
    event_id,
    user_id,
    event_type,
    occurred_at,
    region,
    platform
from {{ ref('stg_events') }}
where event_type in ('app_open', 'search', 'add_to_cart')
