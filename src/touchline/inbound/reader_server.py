"""What the mail readers' fork server imports before it starts any helper (`touchline.inbound.readers`).

Importing it builds the reading patterns (the reply heuristics' and their gates): once in the fork
server, whose helpers inherit them as they fork, instead of in each helper as it starts, and again
in each that replaces a dead one.
"""

from touchline.inbound.readers import warm_up

warm_up()
