{# A singular test: the rows it returns fail. A delivery before its order was placed is a clock or join bug. #}
select d.order_id, o.placed_at, d.delivered_at
from {{ ref('stg_deliveries') }} as d
join {{ ref('stg_orders') }} as o using (order_id)
where d.delivered_at < o.placed_at
