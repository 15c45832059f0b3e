{#- An outcome: what the North Star must lead (northstar.yml outcomes), scored but outside the tree. -#}
{{ config(kind='outcome', label='Revenue', owner='Finance', unit='currency',
          description='Sum of payments in the period.') }}
select
    {{ period('paid_at') }} as period_start,
    sum(amount) as value
from {{ ref('stg_payments') }}
group by 1
