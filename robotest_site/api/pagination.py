"""The one pagination of every resource list: page numbers, a page size the client may choose."""

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

from robotest_site.api import params


class Pagination(PageNumberPagination):
    """`?page=` and `?page_size=` (1–MAX_PAGE_SIZE); a bad value is a 400 naming it, not a silent default.

    The seed's paths keep their plain lists: `/api/v1/sensors/readings` pages by keyset through a
    `Link` header, which stays exact at any depth where an OFFSET would not.
    """

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        return params.integer(
            request.query_params, self.page_size_query_param, default=self.page_size, minimum=1,
            maximum=self.max_page_size,
        )

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw in self.last_page_strings:
            return paginator.num_pages
        return params.integer(request.query_params, self.page_query_param, default=1, minimum=1, maximum=2**31)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            # Past the last page: still a 404 (as DRF answers), with a message that names `page`.
            page = request.query_params.get(self.page_query_param)
            raise NotFound(f"page {page} does not exist: there are fewer results") from None

