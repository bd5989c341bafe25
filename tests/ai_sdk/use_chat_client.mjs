// Sends turns to our chat endpoint the way `useChat` does (the AI SDK's DefaultChatTransport) and
// reads the reply with the SDK's own parser: every chunk is validated against uiMessageChunkSchema,
// then assembled into a UIMessage by readUIMessageStream. Prints the UIMessages as JSON.
// Usage: node use_chat_client.mjs <api url> <access token> <chat id> <text> [<text> ...]
// EXTRA_BODY (JSON, optional): sent with every request, as `sendMessage(m, {body})` does.
import { DefaultChatTransport, readUIMessageStream } from "ai";

const [api, token, chatId, ...texts] = process.argv.slice(2);
const transport = new DefaultChatTransport({ api, headers: { Authorization: `Bearer ${token}` } });
const body = process.env.EXTRA_BODY ? JSON.parse(process.env.EXTRA_BODY) : undefined;
const messages = [];
const errors = [];

for (const [i, text] of texts.entries()) {
  messages.push({ id: `user-${i}`, role: "user", parts: [{ type: "text", text }] });
  const chunks = await transport.sendMessages({
    chatId,
    messages,
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
    body,
  });
  let reply;
  for await (const message of readUIMessageStream({
    stream: chunks,
    onError: (error) => errors.push(String(error)),
    terminateOnError: true,
  })) {
    reply = message;
  }
  messages.push(reply);
}
console.log(JSON.stringify({ messages, errors }));
