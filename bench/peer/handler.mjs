// The peer: POST /boards as a team would write it with Miro's official Node
// client, its tokens in DynamoDB through @aws-sdk/lib-dynamodb.
import { createRequire } from 'node:module';
import { Miro } from '@mirohq/miro-api';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';

// Transport only: the official client sends its token requests to
// https://api.miro.com whatever basePath says; point them at the emulator as
// DNS would. Nothing else in the client is changed.
const require = createRequire(import.meta.url);
const nodeFetch = require('node-fetch');
const realFetch = nodeFetch.default;
nodeFetch.default = (url, init) => realFetch(String(url).replace('https://api.miro.com', process.env.MIRO_API_BASE_URL), init);

const table = process.env.TABLE_NAME;
// removeUndefinedValues: Miro's refresh answer has no user_id, and without it
// the client's (unawaited) save of the new tokens rejects and kills the process.
const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: process.env.AWS_ENDPOINT_URL_DYNAMODB }), {
  marshallOptions: { removeUndefinedValues: true },
});
const storage = {
  async get(userId) {
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: { userId } }));
    return Item?.state;
  },
  async set(userId, state) {
    await ddb.send(new PutCommand({ TableName: table, Item: { userId, state } }));
  },
};
const miro = new Miro({
  clientId: process.env.MIRO_CLIENT_ID,
  clientSecret: process.env.MIRO_CLIENT_SECRET,
  redirectUrl: process.env.MIRO_REDIRECT_URI,
  basePath: process.env.MIRO_API_BASE_URL,
  storage,
});

export async function handler(event) {
  const user = event.requestContext.authorizer.jwt.claims.sub;
  const raw = event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8').toString() : '{}';
  const { name } = JSON.parse(raw);
  const board = await miro.as(user).createBoard({ name });
  return {
    statusCode: 201,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ board: { id: board.id, name: board.name, view_link: board.viewLink } }),
  };
}
