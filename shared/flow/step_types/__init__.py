"""Step types and their registry; may import shared.errors, flow.{formulas,extract,udfs,records}."""
