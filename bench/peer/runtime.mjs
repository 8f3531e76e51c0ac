// The Lambda runtime loop for the Node.js peer (what aws-lambda-ric does):
// fetch the next event from the Runtime API, run the handler, post the answer.
const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
const { handler } = await import('./handler.mjs');
for (;;) {
  const next = await fetch(`${api}/invocation/next`);
  const id = next.headers.get('lambda-runtime-aws-request-id');
  const event = await next.json();
  try {
    const result = await handler(event);
    await fetch(`${api}/invocation/${id}/response`, { method: 'POST', body: JSON.stringify(result) });
  } catch (e) {
    await fetch(`${api}/invocation/${id}/error`, { method: 'POST', body: JSON.stringify({ errorMessage: String(e) }) });
  }
}
