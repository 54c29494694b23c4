"""UDF for the invoices flow: derived values that are easier in Python than in a formula."""

TAX_RATE = 0.2


def enrich(record, context):
    fields = record["fields"]
    rate = float(context.runtime_config.get("tax_rate", TAX_RATE))
    fields["vendor_upper"] = (fields.get("vendor") or "").upper() or None
    fields["total_with_tax"] = round(fields["total"] * (1 + rate), 2)
    context.log(f"enriched invoice {fields.get('invoice_number')}")
    return record
