"""Style classification service: image -> the 23 styles with probabilities. Built in issue 4."""
