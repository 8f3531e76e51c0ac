"""CloudFormation handlers that moto lacks, for the resources the rehearsal's
flow needs, and moto's server with them loaded.

moto's CloudFormation creates a resource only if moto has a handler for its
type; for any other type it logs a warning, creates nothing and resolves a
`Ref` to it as nothing (a `!Sub` keeps the `${Name}` text). moto 5.2.5 has
none for `AWS::SecretsManager::Secret` (whose ARN is the functions'
`MIRO_SECRET_ARN`) nor for `AWS::ApiGatewayV2::*` (the API's id is in the
functions' `MIRO_REDIRECT_URI`, and its routes say which function serves
which request). Each handler here only maps the template's properties onto
moto's own service API (`secretsmanager`, `apigatewayv2`), as CloudFormation
would call it; moto's CloudFormation still orders the resources, resolves
every `Ref`, `!GetAtt` and `!Sub`, and reports them as stack resources.
Every other type moto cannot create stays uncreated, and the rehearsal
lists it.

    python moto_models.py -H 127.0.0.1 -p PORT     # moto's server, with these
"""

from typing import Any

from moto.apigatewayv2.models import apigatewayv2_backends
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.events.models import EventBus
from moto.secretsmanager.models import secretsmanager_backends

# The types this module adds, for the rehearsal's report.
ADDED_TYPES = (
    "AWS::SecretsManager::Secret",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
)


def camel(value: Any) -> Any:
    """CloudFormation's PascalCase keys as the service API's camelCase ones."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


class _Created:
    """What moto's CloudFormation needs of a created resource: the `Ref`
    value, the `!GetAtt` attributes, and nothing to wait for."""

    def __init__(self, physical_id: str, attributes: dict[str, str]):
        self._physical_id = physical_id
        self._attributes = attributes

    @property
    def physical_resource_id(self) -> str:
        return self._physical_id

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name not in self._attributes:
            raise UnformattedGetAttTemplateException()
        return self._attributes[attribute_name]

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES  # type: ignore[attr-defined]

    def is_created(self) -> bool:
        return True

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def update_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        raise NotImplementedError("the rehearsal only creates stacks")

    @classmethod
    def delete_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:  # type: ignore[misc]
        return None


class Secret(_Created, CloudFormationModel):
    __module__ = "moto.secretsmanager.rehearsal"  # moto files models by service
    ATTRIBUTES = ("Id",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "Secret":
        props = cloudformation_json["Properties"]
        if "GenerateSecretString" in props or "SecretString" not in props:
            raise NotImplementedError("the rehearsal's Secret handler takes SecretString only")
        backend = secretsmanager_backends[account_id][region_name]
        backend.create_secret(
            name=resource_name,
            secret_string=props["SecretString"],
            secret_binary=None,
            description=props.get("Description"),
            tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = backend.describe_secret(resource_name).arn
        # CloudFormation: Ref is the ARN, and so is Id.
        return cls(arn, {"Id": arn})


class HttpApi(_Created, CloudFormationModel):
    __module__ = "moto.apigatewayv2.rehearsal"
    ATTRIBUTES = ("ApiId", "ApiEndpoint")

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Api"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "HttpApi":
        props = cloudformation_json["Properties"]
        if "Body" in props or "BodyS3Location" in props:
            raise NotImplementedError("the rehearsal's Api handler takes no OpenAPI body")
        api = apigatewayv2_backends[account_id][region_name].create_api(
            api_key_selection_expression=props.get("ApiKeySelectionExpression"),
            cors_configuration=camel(props.get("CorsConfiguration")),
            description=props.get("Description"),
            disable_schema_validation=props.get("DisableSchemaValidation"),
            disable_execute_api_endpoint=props.get("DisableExecuteApiEndpoint"),
            name=props.get("Name", resource_name),
            protocol_type=props["ProtocolType"],
            route_selection_expression=props.get("RouteSelectionExpression"),
            tags=props.get("Tags") or {},
            version=props.get("Version"),
        )
        return cls(api.api_id, {"ApiId": api.api_id, "ApiEndpoint": api.api_endpoint})


class HttpApiAuthorizer(_Created, CloudFormationModel):
    __module__ = "moto.apigatewayv2.rehearsal"
    ATTRIBUTES = ("AuthorizerId",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Authorizer"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "HttpApiAuthorizer":
        props = cloudformation_json["Properties"]
        authorizer = apigatewayv2_backends[account_id][region_name].create_authorizer(
            api_id=props["ApiId"],
            auth_creds_arn=props.get("AuthorizerCredentialsArn"),
            auth_payload_format_version=props.get("AuthorizerPayloadFormatVersion"),
            auth_result_ttl=props.get("AuthorizerResultTtlInSeconds"),
            authorizer_uri=props.get("AuthorizerUri"),
            authorizer_type=props["AuthorizerType"],
            enable_simple_response=props.get("EnableSimpleResponses"),
            identity_source=props.get("IdentitySource"),
            identity_validation_expr=props.get("IdentityValidationExpression"),
            jwt_config=camel(props.get("JwtConfiguration")),
            name=props["Name"],
        )
        return cls(authorizer.id, {"AuthorizerId": authorizer.id})


class HttpApiIntegration(_Created, CloudFormationModel):
    __module__ = "moto.apigatewayv2.rehearsal"
    ATTRIBUTES = ("IntegrationId",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Integration"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "HttpApiIntegration":
        props = cloudformation_json["Properties"]
        integration = apigatewayv2_backends[account_id][region_name].create_integration(
            api_id=props["ApiId"],
            connection_id=props.get("ConnectionId"),
            connection_type=props.get("ConnectionType"),
            content_handling_strategy=props.get("ContentHandlingStrategy"),
            credentials_arn=props.get("CredentialsArn"),
            description=props.get("Description"),
            integration_method=props.get("IntegrationMethod"),
            integration_subtype=props.get("IntegrationSubtype"),
            integration_type=props["IntegrationType"],
            integration_uri=props.get("IntegrationUri"),
            passthrough_behavior=props.get("PassthroughBehavior"),
            payload_format_version=props.get("PayloadFormatVersion"),
            request_parameters=props.get("RequestParameters"),
            request_templates=props.get("RequestTemplates"),
            response_parameters=props.get("ResponseParameters"),
            template_selection_expression=props.get("TemplateSelectionExpression"),
            timeout_in_millis=props.get("TimeoutInMillis"),
            tls_config=camel(props.get("TlsConfig")),
        )
        return cls(integration.id, {"IntegrationId": integration.id})


class HttpApiRoute(_Created, CloudFormationModel):
    __module__ = "moto.apigatewayv2.rehearsal"
    ATTRIBUTES = ("RouteId",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Route"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "HttpApiRoute":
        props = cloudformation_json["Properties"]
        route = apigatewayv2_backends[account_id][region_name].create_route(
            api_id=props["ApiId"],
            api_key_required=props.get("ApiKeyRequired", False),
            authorization_scopes=props.get("AuthorizationScopes"),
            authorization_type=props.get("AuthorizationType"),
            authorizer_id=props.get("AuthorizerId"),
            model_selection_expression=props.get("ModelSelectionExpression"),
            operation_name=props.get("OperationName"),
            request_models=props.get("RequestModels"),
            request_parameters=props.get("RequestParameters"),
            route_key=props["RouteKey"],
            route_response_selection_expression=props.get("RouteResponseSelectionExpression"),
            target=props.get("Target"),
        )
        return cls(route.route_id, {"RouteId": route.route_id})


# moto's EventBus has no Ref value (a Ref to it resolves to the Python
# object); CloudFormation's Ref of AWS::Events::EventBus is the bus's name.
if not hasattr(EventBus, "physical_resource_id"):
    EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]


if __name__ == "__main__":
    from moto.server import main

    main()
