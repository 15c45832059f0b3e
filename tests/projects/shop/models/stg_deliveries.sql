{{ config(description='Delivered orders.', materialized='view') }}
select distinct order_id, delivered_at
from {{ source('raw', 'events') }}
where event_type = 'order_delivered'
