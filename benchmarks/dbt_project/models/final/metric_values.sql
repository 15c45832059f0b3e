-- Every metric at every grain in one table: what the scorecard's value column holds.
{% set metrics = ['on_time_orders', 'ordering_customers', 'orders_per_customer', 'on_time_rate',
                  'items_per_order', 'new_customers', 'push_click_through_rate', 'search_to_cart_rate',
                  'avg_delivery_minutes_late', 'support_tickets_per_order'] %}
{% for metric in metrics %}
{% if not loop.first %}union all{% endif %}
select '{{ metric }}' as metric, grain, period_start, cast(value as double) as value
from {{ ref(metric) }}
{% endfor %}
