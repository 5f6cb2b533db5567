// Entry point of the citizen app: the train screens, then the screens of the other
// services (extra.js), then the router.
import { start } from "./citizen.js";
import "./extra.js";

start();
