from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import usage_by_day


class UsageQuerySerializer(serializers.Serializer):
    since = serializers.DateField(required=False, help_text="Only days on or after this date.")


class UsageRowSerializer(serializers.Serializer):
    day = serializers.DateField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class UsageView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("since", str, description="YYYY-MM-DD")],
        responses=inline_serializer(
            "UsageReport",
            {
                "total_tokens": serializers.IntegerField(),
                "rows": UsageRowSerializer(many=True),
            },
        ),
    )
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = usage_by_day(user=request.user, since=query.validated_data.get("since"))
        return Response(
            {
                "total_tokens": sum(row["total_tokens"] or 0 for row in rows),
                "rows": UsageRowSerializer(rows, many=True).data,
            }
        )
