"""Query parameters shared by the API's routes, checked before they reach the store.

Text never holds NUL (PostgreSQL text cannot), and is as long as the field it filters at most.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

NO_NUL = r"^[^\x00]*$"
Text = Annotated[str | None, Query(max_length=512, pattern=NO_NUL)]
Name = Annotated[str | None, Query(max_length=250, pattern=NO_NUL)]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=100, pattern=NO_NUL, description="next_cursor of the previous page.")
]
