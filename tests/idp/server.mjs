// A real OpenID Connect provider for the end-to-end tests: panva's certified oidc-provider with its
// development login and consent pages (any password; the login names the account).
// Usage: node server.mjs HOST PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI...
// Prints "listening ISSUER" once it answers. Accounts: ACCOUNTS below.
import Provider from "oidc-provider";

const [host, port, clientId, clientSecret, ...redirects] = process.argv.slice(2);
const issuer = `http://${host}:${port}`;

const ACCOUNTS = {
  jane: { email: "Jane.Doe@uni.edu", email_verified: true, name: "Jane Doe", groups: ["team-1", "chess-club"] },
  bob: { email: "bob@elsewhere.org", email_verified: true, name: "Bob Elsewhere", groups: [] },
  janet: { email: "jane.doe@uni.edu", email_verified: true, name: "Another Jane", groups: [] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirects,
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "groups"] },
  findAccount(ctx, id) {
    const claims = ACCOUNTS[id];
    if (!claims) return undefined;
    return { accountId: id, claims: () => ({ sub: id, ...claims }) };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["classhub-test-idp"] },
});
provider.proxy = false;
provider.listen(Number(port), host, () => console.log(`listening ${issuer}`));
