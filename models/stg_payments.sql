{{ config(description='One row per payment (the demo revenue source), deduplicated on payment_id.') }}
select
    payment_id,
    user_id,
    paid_at,
    amount
from {{ source('billing', 'payments') }}
qualify row_number() over (partition by payment_id order by paid_at) = 1
