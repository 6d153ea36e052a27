"""Database expressions over readings that Django has no portable form for."""

import re

from django.db.models import F, FloatField, Func

# A field of an object value that SQL may name: aggregates, rules and rollups accept these only.
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


class JsonNumber(Func):
    """A reading's value (or one field of an object value) as a float; NULL when it is no number.

    Lets SQL aggregate scalar readings and object fields (`brightness`, `fz`) alike.
    """

    output_field = FloatField()

    def __init__(self, expression="value", field: str = "") -> None:
        if field and not FIELD_NAME.match(field):
            raise ValueError(f"not a field name: {field!r}")
        self.json_field = field
        super().__init__(F(expression) if isinstance(expression, str) else expression)

    def as_postgresql(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        if self.json_field:
            # The field name is checked against FIELD_NAME above, so it is safe to inline.
            col = f"({col} -> '{self.json_field}')"
        return f"CASE WHEN jsonb_typeof({col}) = 'number' THEN ({col})::double precision END", [*params, *params]

    def as_sqlite(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        if self.json_field:
            path = f"'$.{self.json_field}'"
            sql = (
                f"CASE WHEN json_type({col}, {path}) IN ('integer', 'real') "
                f"THEN CAST(json_extract({col}, {path}) AS REAL) END"
            )
        else:
            sql = f"CASE WHEN json_type({col}) IN ('integer', 'real') THEN CAST({col} AS REAL) END"
        return sql, [*params, *params]

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"JsonNumber supports PostgreSQL and SQLite, not {connection.vendor}")
