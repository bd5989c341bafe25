from django.urls import path

from . import views

urlpatterns = [
    path("conversations/", views.ConversationListView.as_view(), name="conversation-list"),
    path(
        "conversations/<uuid:pk>/",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:pk>/messages/",
        views.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<uuid:pk>/stream/",
        views.ResumeStreamView.as_view(),
        name="conversation-stream",
    ),
    path(
        "conversations/<uuid:pk>/stop/",
        views.StopGenerationView.as_view(),
        name="conversation-stop",
    ),
    path(
        "messages/<uuid:pk>/feedback/",
        views.MessageFeedbackView.as_view(),
        name="message-feedback",
    ),
    path("stream/", views.ChatStreamView.as_view(), name="chat-stream"),
    # The AI SDK's docs write `api: "/api/chat/stream"`: answered the same, never redirected (a
    # redirected POST becomes a GET).
    path("stream", views.ChatStreamNoSlashView.as_view(), name="chat-stream-no-slash"),
    # useChat's resumeStream(): GET `${api}/${chatId}/stream`.
    path("stream/<str:chat_id>/stream", views.ResumeStreamView.as_view(), name="chat-resume"),
]
