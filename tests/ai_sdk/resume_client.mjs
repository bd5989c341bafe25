// Resumes a chat's running reply the way `useChat({resume: true})` / `resumeStream()` does: the AI
// SDK's DefaultChatTransport.reconnectToStream requests GET `${api}/${chatId}/stream`, returns null
// on 204 (nothing running), else the reply's UIMessageChunks, each validated against the SDK's
// uiMessageChunkSchema; readUIMessageStream assembles them into a UIMessage.
// Prints one line `{"chunk": <chunk>}` per chunk as it arrives (so a test can act mid-stream), then
// one last line `{"resumed", "chunks", "message", "errors"}` (resumed: false when the server
// answered 204; errors: what the SDK raised, e.g. a chunk that failed its schema or a 404).
// Usage: node resume_client.mjs <api url> <access token> <chat id>
import { DefaultChatTransport, readUIMessageStream } from "ai";

const [api, token, chatId] = process.argv.slice(2);
const transport = new DefaultChatTransport({ api, headers: { Authorization: `Bearer ${token}` } });
const chunks = [];
const errors = [];
let resumed = false;
let message = null;

try {
  const stream = await transport.reconnectToStream({ chatId });
  if (stream !== null) {
    resumed = true;
    const reported = stream.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          chunks.push(chunk);
          process.stdout.write(`${JSON.stringify({ chunk })}\n`);
          controller.enqueue(chunk);
        },
      }),
    );
    for await (const snapshot of readUIMessageStream({
      stream: reported,
      onError: (error) => errors.push(String(error)),
      terminateOnError: true,
    })) {
      message = snapshot;
    }
  }
} catch (error) {
  // Already in `errors` when readUIMessageStream reported it; a failed request is not.
  if (!errors.includes(String(error))) errors.push(String(error));
}
console.log(JSON.stringify({ resumed, chunks, message, errors }));
