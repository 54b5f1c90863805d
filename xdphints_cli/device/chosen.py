"""How a command found its device (state.choose_link): a command that changes a device it
was not given says so (App.acting_on), in words and in its JSON. Plain data, so the CLI
can name it without importing the netlink code."""

CHOSEN_BY_ARGUMENT = "argument"
CHOSEN_BY_ENVIRONMENT = "XDPHINTS_DEV"
CHOSEN_BY_ONLY_UP = "only-interface-up"
CHOSEN_BY_WORDS = {CHOSEN_BY_ENVIRONMENT: "named by $XDPHINTS_DEV",
                   CHOSEN_BY_ONLY_UP: "the only non-loopback interface that is up"}
