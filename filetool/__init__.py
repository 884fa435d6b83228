"""The `.eqi` file tool: any bytes in, a self-describing compressed file out, and back (`equalinfo compress`)."""
