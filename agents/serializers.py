from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from .models import AgentRun, AgentStep


# --- Request bodies ------------------------------------------------------------------------------
class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and objects instead of converting them."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class AgentInputSerializer(serializers.Serializer):
    """Base of the pattern bodies: every field a non-blank string, and together at most
    AGENT_MAX_INPUT_CHARS characters (read at request time)."""

    def validate(self, attrs):
        limit = settings.AGENT_MAX_INPUT_CHARS
        total = sum(len(value) for value in attrs.values() if isinstance(value, str))
        if total > limit:
            raise serializers.ValidationError(
                f"The input is too long ({total} characters, at most {limit})."
            )
        return attrs


class SequentialInputSerializer(AgentInputSerializer):
    input = StrictCharField(help_text="The product or topic to write marketing copy for.")


class RoutingInputSerializer(AgentInputSerializer):
    query = StrictCharField(help_text="A customer query.")


class ParallelInputSerializer(AgentInputSerializer):
    code = StrictCharField(trim_whitespace=False, help_text="Source code to review.")


class OrchestratorInputSerializer(AgentInputSerializer):
    featureDescription = StrictCharField(help_text="The feature to plan and implement.")


class EvaluatorInputSerializer(AgentInputSerializer):
    text = StrictCharField(help_text="The text to translate.")
    targetLanguage = StrictCharField(max_length=64, help_text="e.g. 'French'.")
    domain = StrictCharField(max_length=200, help_text="e.g. 'legal', 'medical', 'marketing'.")


class ToolsInputSerializer(AgentInputSerializer):
    problem = StrictCharField(help_text="A math problem.")


# --- Runs ----------------------------------------------------------------------------------------
class AgentStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentStep
        fields = [
            "id",
            "position",
            "name",
            "status",
            "model",
            "output",
            "error",
            "duration_ms",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cached",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


RUN_FIELDS = [
    "id",
    "pattern",
    "status",
    "input",
    "final_output",
    "error",
    "total_tokens",
    "created_at",
    "finished_at",
]


class AgentRunSummarySerializer(serializers.ModelSerializer):
    step_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = AgentRun
        fields = [*RUN_FIELDS, "step_count"]
        read_only_fields = fields


class AgentRunSerializer(serializers.ModelSerializer):
    steps = AgentStepSerializer(many=True, read_only=True)

    class Meta:
        model = AgentRun
        fields = [*RUN_FIELDS, "steps"]
        read_only_fields = fields
