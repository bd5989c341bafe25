from django.contrib import admin
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from .serializers import RegisterSerializer, TokenRefreshSerializer, UserSerializer
from .services import register_user
from .throttling import login_retry_after


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = register_user(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(TokenObtainPairView):
    """simplejwt's token pair view, with login throttling (accounts.throttling): over
    `AUTH_RATE_LIMIT` for the username or the client address, a 429 `rate_limited` with
    `Retry-After`, before the password is checked."""

    def post(self, request, *args, **kwargs):
        body = request.data
        username = body.get("username") if isinstance(body, dict) else None
        wait = login_retry_after(request._request, username=username)
        if wait:
            raise exceptions.Throttled(wait=wait)
        return super().post(request, *args, **kwargs)


class RefreshView(TokenRefreshView):
    serializer_class = TokenRefreshSerializer


class MeView(APIView):
    @extend_schema(responses=UserSerializer)
    def get(self, request):
        return Response(UserSerializer(request.user).data)


def admin_login(request, **kwargs):
    """The admin's login view with its form's throttling (accounts.admin) answered as a 429 with
    `Retry-After`: the same page, telling the user to wait."""
    response = admin.site.login(request, **kwargs)
    wait = getattr(request, "login_retry_after", None)
    if wait:
        response.status_code = 429
        response["Retry-After"] = str(wait)
    return response
