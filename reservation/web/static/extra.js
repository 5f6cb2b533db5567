// The screens of the other services, each registering its routes on the citizen app's
// route table: hospital registration, vaccination, notifications (inbox + live events),
// waiting room and waitlist.
import "./hospital.js";
import "./vaccine.js";
import "./inbox.js";
import "./queue.js";
import "./waitlist.js";
